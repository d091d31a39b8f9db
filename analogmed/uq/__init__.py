"""analogmed.uq"""
