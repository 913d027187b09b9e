"""Offline tools that build training and evaluation material (no bpy)."""
