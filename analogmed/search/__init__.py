"""analogmed.search"""
