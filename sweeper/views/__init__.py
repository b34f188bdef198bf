"""Terminal renderings of analysis results (Rich tables and plain lines), shared by the commands."""
