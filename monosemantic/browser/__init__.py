"""The feature browser: the paper's A/1 interface as a static site (stage browser).

    inputs.py      the browsed dictionary, its model and store, and the dictionaries it is compared with
                   (loaded from the artifacts by stages/browser.py)
    data.py        what is shown, computed (activations, examples and their contexts, proxies, logit weights,
                   splitting, universality)
    site.py        the data encoded for the app in assets/, and the site written
    screenshot.py  one feature page rendered by headless Chromium
"""
