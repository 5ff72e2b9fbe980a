"""vae_core: the plain-PyTorch half of VAE Latent Explorer.

Data flows one way: dataset (data) -> training (train) -> checkpoint folder
(checkpoint) -> latent cache (latents) -> the Streamlit pages, which only ask.
This package never imports streamlit.
"""


class VaeError(Exception):
    """An error meant for a person: one sentence saying what went wrong and what to do.

    CLIs print it without a traceback; pages show it with st.error.
    """


__all__ = ["VaeError"]
