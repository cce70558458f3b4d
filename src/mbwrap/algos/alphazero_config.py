"""Settings of :class:`~mbwrap.algos.AlphaZero`, each with its default and where it comes
from."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.planners.mcts.policies import DIRICHLET_FRACTION

_PAPER = "Silver et al. 2018"
_PSEUDOCODE = "Silver et al. 2018, pseudocode"

#: What the settings left ``None`` become when the game has no preset: AlphaZero's 800
#: simulations and 30 sampled moves (Silver et al. 2018, pseudocode), and a residual
#: network far smaller than its 19 to 39 blocks of 256 filters.
PAPER_GAME_SETTINGS: dict[str, Any] = {
    "network_kwargs": {"kind": "resnet", "channels": 64, "blocks": 6},
    "num_simulations": 800,
    "temperature_moves": 30,
}


@dataclass(kw_only=True)
class AlphaZeroConfig(AlgoConfig):
    """Settings of :class:`~mbwrap.algos.AlphaZero`. Those that depend on the size of the
    board default to ``None``: the game's preset fills them
    (:data:`~mbwrap.algos.presets.PRESETS`), else :data:`PAPER_GAME_SETTINGS`."""

    algo_name: ClassVar[str] = "alphazero"

    network_kwargs: dict[str, Any] | None = setting(
        None, "keywords of PolicyValueNet (kind, channels, blocks, value_hidden); None: the "
        "game's preset, else a 6-block residual network of 64 filters",
        source="Silver et al. 2017, Methods (19 or 39 blocks of 256 filters)", kind="dict",
    )
    num_simulations: int | None = setting(
        None, "searches per self-play move; None: the game's preset, else 800",
        source=_PSEUDOCODE, low=1, kind="int",
    )
    eval_num_simulations: int | None = setting(
        None, "simulations per move in predict(); None: as num_simulations", low=1,
        kind="int",
    )
    num_parallel_games: int = setting(64, "games played at once in self-play", low=1)
    temperature_moves: int | None = setting(
        None, "moves per game drawn from the visit counts (temperature 1), the most visited "
        "move after; None: the game's preset, else 30",
        source=f"{_PSEUDOCODE} (num_sampling_moves)", low=0, kind="int",
    )
    dirichlet_alpha: float | None = setting(
        None, "root-noise concentration; None: 10 / the average number of legal moves seen "
        "in self-play", source=f"{_PAPER}, Methods", low=1e-6, optional=True,
    )
    dirichlet_fraction: float = setting(DIRICHLET_FRACTION, "weight of the root noise",
                                        source=f"{_PAPER}, Methods", low=0.0, high=1.0)
    pb_c_init: float = setting(1.25, "pUCT's exploration constant c_init", source=_PSEUDOCODE,
                               low=0.0)
    pb_c_base: float = setting(19652.0, "pUCT's exploration constant c_base",
                               source=_PSEUDOCODE, low=1e-6)
    reuse_tree: bool = setting(True, "keep the subtree below each move for the next search",
                               source="Silver et al. 2017, Methods")
    tensor_rules: bool = setting(
        True, "search on the game's tensor rules when it has some; False searches the real "
        "game by snapshot and restore, as for games without them",
    )
    augment: bool = setting(
        False, "train on each position seen through a random symmetry of the board (games "
        "with tensor rules); AlphaZero did not, as chess and shogi have none",
        source="Silver et al. 2017 (the 8 symmetries of Go)",
    )
    buffer_size: int = setting(
        50_000, "positions in the training window (the paper keeps the latest 1M games; "
        "small boards need far fewer)", low=1,
    )
    batch_size: int = setting(256, "positions per gradient step (paper: 4096)", low=1)
    learning_rate: float = setting(
        1e-3, "Adam's step size (the paper anneals SGD with momentum 0.9 from 0.2; Adam needs "
        "no schedule at this scale)", low=0.0,
    )
    weight_decay: float = setting(1e-4, "L2 regularisation c", source=f"{_PAPER}, Methods",
                                  low=0.0)
    train_freq: int = setting(
        64, "self-play moves (all games counted) per gradient_steps updates: one phase per "
        "move of the default 64 games", low=1,
    )
    gradient_steps: int = setting(1, "gradient steps every train_freq moves", low=0)
    learning_starts: int = setting(
        1_000, "positions in the window (moves of finished games) before the first gradient "
        "step", low=0,
    )

    def game_settings(self, preset: dict[str, Any]) -> dict[str, Any]:
        """Values for the board-size settings left ``None``: ``preset``'s (the game's), else
        :data:`PAPER_GAME_SETTINGS`."""
        return {
            name: copy.deepcopy(preset.get(name, default))
            for name, default in PAPER_GAME_SETTINGS.items()
            if getattr(self, name) is None
        }
