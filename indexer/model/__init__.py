"""The model room: encoder specs described as data (`configs/`), one factory for registered, hub and local models
(`encoder.load_encoder`), the `shoplens-lite` towers and their packaged weights. Training lives apart, in `training/`:
nothing here imports it."""
