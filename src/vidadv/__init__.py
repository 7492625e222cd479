"""vidadv: transfer-based adversarial attacks on video recognition models.

Headline method: Temporal Translation (TT), Wei et al., "Boosting the Transferability of Video
Adversarial Examples via Temporal Translation", AAAI 2022.
"""

__version__ = "0.1.0"
