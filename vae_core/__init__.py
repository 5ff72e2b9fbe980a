"""vae_core: the plain-PyTorch half of VAE Latent Explorer.

Data flows one way: dataset (data) -> training (train) -> checkpoint folder
(checkpoint) -> latent cache (latents) -> the Streamlit pages, which only ask.
This package never imports streamlit.
"""


class VaeError(Exception):
    """An error meant for a person: one sentence saying what went wrong and what to do.

    CLIs print it without a traceback; pages show it with st.error.
    """


def parse_json(text):
    """json.loads for text a person or another process wrote (uploads, run folders, caches).

    Every way such text can be unusable raises ValueError, which callers expect: not
    JSON, integers past Python's 4,300-digit limit (a ValueError already) and nesting
    deep enough to exhaust the stack (a RecursionError otherwise, which escaped every
    caller and put an error box on every page).
    """
    import json
    try:
        return json.loads(text)
    except RecursionError as e:
        raise ValueError("the JSON is nested too deeply") from e


__all__ = ["VaeError", "parse_json"]
