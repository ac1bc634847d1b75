"""The paper's analyses of the features: proxies, logit weights, universality, splitting, ..."""
