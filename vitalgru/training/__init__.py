"""vitalgru.training"""
