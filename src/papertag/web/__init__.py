"""`papertag serve`: read-only web pages over a papertag database (app.py), rendered on the server."""
