"""analogmed.train"""
