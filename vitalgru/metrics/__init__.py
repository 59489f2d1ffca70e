"""vitalgru.metrics"""
