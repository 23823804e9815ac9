"""Analysis steps of the chapters: plain functions, no plotting (one module per chapter)."""
