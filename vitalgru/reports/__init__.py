"""vitalgru.reports"""
