"""Task data: the 3×3 binary images the network classifies, and the pixel noise applied to them."""
