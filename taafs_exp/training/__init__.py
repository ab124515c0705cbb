"""Training: the LightningModule shared by every backbone, DeePMD-kit's schedule, train(cfg)."""
