"""VAGTA-synth: a small rendered world that shows the normal/abnormal confusion, published like a real dataset."""
