"""Fixed opponents for evaluating agents on PettingZoo board games.

Each reads PettingZoo's observation of the player to move (the ``observation`` planes:
plane 0 the mover's marks, plane 1 the opponent's; and the ``action_mask``) and returns a
move, so it plays either side of ``tictactoe_v3`` / ``connect_four_v3``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from mbwrap.envs.aec import AECGame, action_mask

_TTT_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
              (2, 4, 6))


def _ttt_winner(board: tuple[int, ...]) -> int:
    """1 or -1 when that side has three in a row, else 0 (board: 1 mover, -1 opponent)."""
    for a, b, c in _TTT_LINES:
        if board[a] != 0 and board[a] == board[b] == board[c]:
            return board[a]
    return 0


@functools.cache
def tictactoe_values(board: tuple[int, ...]) -> tuple[float, ...]:
    """Negamax value of every cell for the player to move (``board``: 1 the mover's
    marks, -1 the opponent's, 0 empty; 9 cells): +1 a forced win, 0 a draw, -1 a forced
    loss, ``-inf`` for occupied cells. Exact, memoised over the 5478 legal positions."""
    values = []
    for cell in range(9):
        if board[cell] != 0:
            values.append(-math.inf)
            continue
        after = list(board)
        after[cell] = 1
        if _ttt_winner(tuple(after)) == 1:
            values.append(1.0)
        elif all(after):
            values.append(0.0)
        else:
            flipped = tuple(-x for x in after)
            values.append(-max(tictactoe_values(flipped)))
    return tuple(values)


class MinimaxTicTacToe:
    """Perfect tic-tac-toe: a move of the best negamax value, chosen at random among the
    equally good ones (so that games against a deterministic player vary).

    :param seed: seeds the choice among equally good moves.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def values(self, obs: dict[str, Any]) -> np.ndarray:
        """``[9]`` negamax values of the moves (``-inf`` for illegal ones)."""
        planes = np.asarray(obs["observation"]).reshape(9, 2)
        board = tuple(int(x) for x in planes[:, 0] - planes[:, 1])
        return np.asarray(tictactoe_values(board))

    def __call__(self, obs: dict[str, Any]) -> int:
        legal = action_mask(obs)
        values = np.where(legal, self.values(obs), -np.inf)
        best = np.flatnonzero(values == values.max())
        return int(self.rng.choice(best))


class _Node:
    __slots__ = ("children", "moves", "visits", "wins")

    def __init__(self, moves: list[int]) -> None:
        self.moves = moves  # untried moves
        self.children: dict[int, _Node] = {}
        self.visits = 0
        self.wins = 0.0  # for the player who moved into this node


class RolloutMCTSConnectFour:
    """Connect four by plain UCT (Kocsis & Szepesvári 2006): ``num_rollouts`` iterations
    per move, each adding one node and valuing it by one uniformly random playout;
    the most visited move is played.

    :param num_rollouts: iterations (= random playouts) per move.
    :param exploration: UCB1's constant (``sqrt(2)``, Auer et al. 2002).
    :param seed: seeds the playouts.
    """

    rows, cols = 6, 7

    def __init__(self, num_rollouts: int = 200, *, exploration: float = math.sqrt(2),
                 seed: int | None = None) -> None:
        if isinstance(num_rollouts, bool) or not isinstance(num_rollouts, int) or (
            num_rollouts < 1
        ):
            raise ValueError(f"num_rollouts: expected an int >= 1, got {num_rollouts!r}")
        self.num_rollouts = num_rollouts
        self.exploration = float(exploration)
        self.rng = np.random.default_rng(seed)

    # A board is a list of 7 columns, each a list of pieces from the bottom (1 or 2).
    def _wins(self, cols: list[list[int]], col: int) -> bool:
        row = len(cols[col]) - 1
        piece = cols[col][row]

        def at(c: int, r: int) -> int:
            return cols[c][r] if 0 <= c < self.cols and 0 <= r < len(cols[c]) else 0

        for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
            count = 1
            for sign in (1, -1):
                c, r = col + sign * dc, row + sign * dr
                while at(c, r) == piece:
                    count += 1
                    c, r = c + sign * dc, r + sign * dr
            if count >= 4:
                return True
        return False

    def _moves(self, cols: list[list[int]]) -> list[int]:
        return [c for c in range(self.cols) if len(cols[c]) < self.rows]

    def _playout(self, cols: list[list[int]], piece: int) -> int:
        """Random play from ``cols`` with ``piece`` to move; the winner's piece or 0."""
        while True:
            moves = self._moves(cols)
            if not moves:
                return 0
            col = moves[int(self.rng.integers(len(moves)))]
            cols[col].append(piece)
            if self._wins(cols, col):
                return piece
            piece = 3 - piece

    def __call__(self, obs: dict[str, Any]) -> int:
        legal = action_mask(obs)
        planes = np.asarray(obs["observation"])
        grid = planes[..., 0].astype(int) * 1 + planes[..., 1].astype(int) * 2  # 1: me
        base = [[int(grid[r, c]) for r in range(self.rows - 1, -1, -1) if grid[r, c]]
                for c in range(self.cols)]
        root = _Node([c for c in range(self.cols) if legal[c]])
        for _ in range(self.num_rollouts):
            cols = [list(c) for c in base]
            node, path, piece, winner = root, [root], 1, None
            # Selection.
            while not node.moves and node.children:
                log_n = math.log(node.visits)
                move, node = max(
                    node.children.items(),
                    key=lambda kv: kv[1].wins / kv[1].visits
                    + self.exploration * math.sqrt(log_n / kv[1].visits),
                )
                cols[move].append(piece)
                path.append(node)
                if self._wins(cols, move):
                    winner = piece
                    break
                piece = 3 - piece
            # Expansion and playout.
            if winner is None and node.moves:
                move = node.moves.pop(int(self.rng.integers(len(node.moves))))
                cols[move].append(piece)
                child = _Node([])
                node.children[move] = child
                path.append(child)
                if self._wins(cols, move):
                    winner = piece
                else:
                    child.moves = self._moves(cols)
                    winner = self._playout(cols, 3 - piece)
            elif winner is None:
                winner = 0  # a full board
            # Backup: a node's wins count for the player who moved into it.
            mover = 2  # the root was reached by the opponent's move
            for n in path:
                n.visits += 1
                n.wins += 1.0 if winner == mover else 0.5 if winner == 0 else 0.0
                mover = 3 - mover
        return max(root.children.items(), key=lambda kv: kv[1].visits)[0]


#: A player: PettingZoo's observation of the player to move -> a move.
Player = Callable[[dict[str, Any]], int]


class MatchResult(NamedTuple):
    """Games of ``player`` against an opponent, counted for ``player``."""

    wins: int
    draws: int
    losses: int
    #: ``[games]`` outcomes for ``player`` (+1, 0, -1), in the order played.
    outcomes: tuple[int, ...]


def play_match(env_name: str, player: Player, opponent: Player, games: int) -> MatchResult:
    """Play ``games`` games of the PettingZoo game ``env_name``, ``player`` moving first in
    the even-numbered games and second in the others (half of the games each side).

    :raises ValueError: naming ``action`` when a player picks an illegal move.
    """
    if isinstance(games, bool) or not isinstance(games, int) or games < 1:
        raise ValueError(f"games: expected an int >= 1, got {games!r}")
    outcomes = []
    for index in range(games):
        game = AECGame(env_name)
        game.reset()
        seats = (player, opponent) if index % 2 == 0 else (opponent, player)
        mine = index % 2
        score = 0.0
        while not game.game_over:
            mover = game.to_play
            reward, _ = game.play(int(seats[mover](game.current_observation())))
            if reward:
                score = reward if mover == mine else -reward
        outcomes.append(int(np.sign(score)))
    return MatchResult(
        wins=outcomes.count(1), draws=outcomes.count(0), losses=outcomes.count(-1),
        outcomes=tuple(outcomes),
    )
