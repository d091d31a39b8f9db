"""analogmed.space"""
