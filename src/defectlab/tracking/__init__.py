"""In-situ TEM kinetics: link defects over the frames of a video, then measure their lives."""
