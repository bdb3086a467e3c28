"""Presentation: the results object rendered as files, HTML and terminal tables.

The last stage of the data flow; nothing upstream imports it.
"""
