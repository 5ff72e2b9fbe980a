"""VAE Latent Explorer: `streamlit run app.py`.

The entry sets up the page, the sidebar model picker and the navigation; each
page is a short script in pages/ that lays out widgets over vae_core.
"""
import streamlit as st

st.set_page_config(page_title="VAE Latent Explorer", page_icon="🧭", layout="wide")

from ui_common import sidebar_model_picker  # noqa: E402  (set_page_config must come first)

pages = [
    st.Page("pages/explore.py", title="Explore", icon=":material/explore:", default=True, url_path="explore"),
    st.Page("pages/grid.py", title="Grid", icon=":material/grid_view:", url_path="grid"),
    st.Page("pages/interpolate.py", title="Interpolate", icon=":material/swap_horiz:", url_path="interpolate"),
    st.Page("pages/pca.py", title="PCA", icon=":material/scatter_plot:", url_path="pca"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
]
nav = st.navigation(pages)
st.sidebar.title("VAE Latent Explorer")
if sidebar_model_picker() is None:
    st.stop()
nav.run()
