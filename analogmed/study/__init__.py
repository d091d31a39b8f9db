"""analogmed.study"""
