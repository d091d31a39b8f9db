"""analogmed.evaluate"""
