"""Parts of the embedders (``mlx_cross_encoder.embedder``): the mlx-lm decoder backbone of decoder embedders."""
