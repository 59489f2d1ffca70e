"""vitalgru.scoring"""
