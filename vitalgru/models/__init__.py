"""vitalgru.models"""
