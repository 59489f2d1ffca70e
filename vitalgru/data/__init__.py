"""vitalgru.data"""
