"""analogmed.models"""
