"""Compare a capture with the golden: outputs against tolerance bands, fingerprints against a
severity policy, then hints and a verdict. Never touches Docker or the filesystem of a target."""
