"""Bridges to other circuit tools. Each one is an optional extra; the core never imports them."""
