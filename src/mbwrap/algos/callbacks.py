"""SB3 callbacks mbwrap's algorithms and demos use."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class EpisodeStatsCallback(BaseCallback):
    """Records the return and length of every finished real episode, in order.

    Reads the ``"episode"`` entry SB3's ``Monitor`` puts in ``infos``, so it works with any
    SB3 algorithm as well as mbwrap's.

    :ivar episode_returns: one float per finished episode.
    :ivar episode_lengths: one int per finished episode.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.episode_returns.append(float(episode["r"]))
                self.episode_lengths.append(int(episode["l"]))
        return True
