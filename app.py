"""VAE Latent Explorer: `streamlit run app.py`.

The entry sets up the page, the sidebar model picker and the navigation; each
page is a short script in pages/ that lays out widgets over vae_core.
VAE_PUBLIC=1 serves a shared demo: the explorer pages only (no Train page).
"""
import streamlit as st

st.set_page_config(page_title="VAE Latent Explorer", page_icon="🧭", layout="wide")

from ui_common import public_mode, sidebar_model_picker  # noqa: E402  (set_page_config must come first)

# A run that takes more than 0.3 s shows a bar and "Working…" at the top: the toolbar's
# own running indicator is hidden (client.toolbarMode = "minimal"). Quick fragment reruns
# (a z from the explorer) stay silent: the delay restarts with every run.
st.html("""<style>
@keyframes vae-busy-in { to { opacity: 1; } }
@keyframes vae-busy-slide { from { background-position: -40vw 0; } to { background-position: 100vw 0; } }
[data-testid="stApp"][data-test-script-state="running"]::before {
  content: ""; position: fixed; top: 0; left: 0; right: 0; height: 3px; z-index: 1000100; opacity: 0;
  background: linear-gradient(90deg, transparent, var(--primary-color, #ff4b4b), transparent) no-repeat;
  background-size: 40vw 3px; animation: vae-busy-in 0s 0.3s forwards, vae-busy-slide 1.1s linear infinite; }
[data-testid="stApp"][data-test-script-state="running"]::after {
  content: "Working…"; position: fixed; top: 8px; right: 16px; z-index: 1000100; opacity: 0; font-size: 0.8rem;
  padding: 2px 10px; border-radius: 10px; background: rgba(128,128,128,0.25); animation: vae-busy-in 0s 0.3s forwards; }
</style>""")

explore = st.Page("pages/explore.py", title="Explore", icon=":material/explore:", url_path="explore")


def _open_explore():
    """The app's root opens Explore at its own path: Streamlit gives the default page the
    path "", so were Explore the default, a link to /explore would show "Page not found"
    before running it. Model and z travel along."""
    st.switch_page(explore, query_params=st.query_params.to_dict())


home = st.Page(_open_explore, title="VAE Latent Explorer", url_path="home", default=True, visibility="hidden")
pages = [
    home,
    explore,
    st.Page("pages/grid.py", title="Grid", icon=":material/grid_view:", url_path="grid"),
    st.Page("pages/interpolate.py", title="Interpolate", icon=":material/swap_horiz:", url_path="interpolate"),
    st.Page("pages/pca.py", title="PCA", icon=":material/scatter_plot:", url_path="pca"),
    st.Page("pages/map.py", title="Map", icon=":material/map:", url_path="map"),
    st.Page("pages/traverse.py", title="Traverse", icon=":material/view_comfy:", url_path="traverse"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]
if not public_mode():  # a shared demo must not start, cancel or delete jobs, nor read server folders
    pages.append(st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"))
nav = st.navigation(pages)
if nav is home:
    nav.run()  # before the picker: its notices (a bad link's model or z) must show on Explore's run
st.sidebar.title("VAE Latent Explorer")
if sidebar_model_picker() is None:
    st.stop()
nav.run()
