"""analogmed.data"""
