"""What tests/, bench/ and stress/ share: real service processes, synthetic photos, /metrics reading, and
the tiny model trained by the real training CLI. Never imported by app/ or training/."""
