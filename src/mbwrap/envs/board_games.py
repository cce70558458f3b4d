"""Tic-tac-toe and connect four as batched tensor rules, move for move as PettingZoo's.

A :class:`GameState` holds ``B`` games: the board ``[B, cells]`` (int8, ``0`` empty,
``1`` the first player's mark, ``2`` the second's, in PettingZoo's cell order), the
player to move ``[B]`` (long, ``0`` or ``1``) and whether the game is over ``[B]``
(bool). Every operation is a tensor operation over the whole batch on the tensors'
device, with no Python loop over games, so a search can step thousands of games at once.

Observations are PettingZoo's for the player to move: ``observation`` ``[B, *obs_shape]``
int8 (plane 0 the mover's marks, plane 1 the opponent's) and ``action_mask`` ``[B, A]``
int8 (the moves the board allows; PettingZoo keeps reporting them after the game ended).
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch


class GameState(NamedTuple):
    """``B`` games.

    :param board: ``[B, cells]`` int8: 0 empty, 1 first player, 2 second player.
    :param to_play: ``[B]`` long, the player to move (0 or 1).
    :param terminal: ``[B]`` bool, the game is over.
    """

    board: torch.Tensor
    to_play: torch.Tensor
    terminal: torch.Tensor


class StepResult(NamedTuple):
    """One move in ``B`` games.

    :param state: the games after the move.
    :param reward: ``[B]`` float, the reward of the player who moved (+1 win, 0 else;
        0 for games already over).
    :param terminal: ``[B]`` bool, the game is over after the move.
    """

    state: GameState
    reward: torch.Tensor
    terminal: torch.Tensor


def _lines(rows: int, cols: int, length: int) -> torch.Tensor:
    """``[L, length]`` flat (row-major) cell indices of every straight line of ``length``
    cells on a ``rows x cols`` board: horizontal, vertical and both diagonals."""
    lines = []
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                end_r, end_c = r + dr * (length - 1), c + dc * (length - 1)
                if 0 <= end_r < rows and 0 <= end_c < cols:
                    lines.append([(r + dr * k) * cols + c + dc * k for k in range(length)])
    return torch.tensor(lines, dtype=torch.long)


def has_line(board: torch.Tensor, lines: torch.Tensor, piece: torch.Tensor) -> torch.Tensor:
    """Whether ``piece`` fills one of ``lines`` on each board.

    :param board: ``[B, cells]``; :param lines: ``[L, K]`` cell indices;
    :param piece: ``[B]`` the mark to look for.
    :return: ``[B]`` bool.
    """
    cells = board[:, lines]  # [B, L, K]
    return (cells == piece.to(board.dtype)[:, None, None]).all(-1).any(-1)


class BoardGame(abc.ABC):
    """Rules of a two-player, zero-sum, alternating board game on tensors.

    :param name: the PettingZoo module the rules reproduce (``"tictactoe_v3"``).
    :param num_actions: ``A``; :param num_cells: cells of the flat board;
    :param obs_shape: shape of one observation plane stack (``(rows, cols, 2)``).
    """

    name: str
    num_actions: int
    num_cells: int
    obs_shape: tuple[int, int, int]
    #: PettingZoo agent names, first player first.
    agents: tuple[str, str]

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> GameState:
        """``batch_size`` empty boards, the first player to move."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        return GameState(
            board=torch.zeros(batch_size, self.num_cells, dtype=torch.int8, device=device),
            to_play=torch.zeros(batch_size, dtype=torch.long, device=device),
            terminal=torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    @abc.abstractmethod
    def open_moves(self, board: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` bool, the moves the board has room for (game over or not)."""

    @abc.abstractmethod
    def _place(self, board: torch.Tensor, action: torch.Tensor, piece: torch.Tensor) -> tuple[
        torch.Tensor, torch.Tensor
    ]:
        """``(new board, cell [B])``: ``piece`` put where ``action`` puts it."""

    @property
    @abc.abstractmethod
    def lines(self) -> torch.Tensor:
        """``[L, K]`` the winning lines."""

    @abc.abstractmethod
    def symmetries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The board's symmetries that keep the rules: ``(cells [S, cells], actions [S, A])``,
        long; symmetry ``s`` moves what is in cell ``cells[s, i]`` to cell ``i`` and the
        move ``actions[s, a]`` to ``a``. Row 0 is the identity."""

    def legal_actions(self, state: GameState) -> torch.Tensor:
        """``[B, A]`` bool, the moves allowed (none once the game is over)."""
        return self.open_moves(state.board) & ~state.terminal[:, None]

    def step(self, state: GameState, action: torch.Tensor) -> StepResult:
        """Play ``action`` (``[B]`` long) for the player to move in every game.

        Games already over are left as they are (reward 0). The action must be legal in
        the others (see :meth:`check_actions`); no check is made here, so that a search
        never waits for the host.
        """
        board, to_play, terminal = state
        action = action.to(device=board.device, dtype=torch.long)
        piece = (to_play + 1).to(board.dtype)
        placed, _ = self._place(board, action, piece)
        new_board = torch.where(terminal[:, None], board, placed)
        won = has_line(new_board, self.lines.to(board.device), piece) & ~terminal
        full = (new_board != 0).all(-1)
        now_over = terminal | won | full
        reward = won.to(torch.float32)
        next_to_play = torch.where(terminal, to_play, 1 - to_play)
        return StepResult(GameState(new_board, next_to_play, now_over), reward, now_over)

    def check_actions(self, state: GameState, action: torch.Tensor) -> None:
        """Raise ``ValueError`` naming ``action`` when one is illegal (reads the host)."""
        action = torch.as_tensor(action, device=state.board.device).long().reshape(-1)
        if action.shape[0] != state.board.shape[0]:
            raise ValueError(
                f"action: expected {state.board.shape[0]} actions (one per game), got "
                f"{action.shape[0]}"
            )
        if bool(((action < 0) | (action >= self.num_actions)).any()):
            raise ValueError(
                f"action: expected moves in [0, {self.num_actions}), got {action.tolist()}"
            )
        legal = self.legal_actions(state).gather(1, action[:, None]).squeeze(1)
        if not bool(legal.all()):
            bad = torch.nonzero(~legal).flatten().tolist()
            raise ValueError(
                f"action: expected legal moves, got {action[bad].tolist()} in games {bad} "
                f"(illegal there, or the game is over)"
            )

    def observe(self, state: GameState) -> tuple[torch.Tensor, torch.Tensor]:
        """PettingZoo's observation for the player to move.

        :return: ``observation`` ``[B, *obs_shape]`` int8 and ``action_mask`` ``[B, A]``
            int8 (the moves the board has room for, as PettingZoo reports them even after
            the game ended).
        """
        board, to_play, _ = state
        rows, cols, _ = self.obs_shape
        mine = (board == (to_play + 1).to(board.dtype)[:, None]).to(torch.int8)
        theirs = (board == (2 - to_play).to(board.dtype)[:, None]).to(torch.int8)
        obs = torch.stack([mine, theirs], -1).view(-1, rows, cols, 2)
        return obs, self.open_moves(board).to(torch.int8)

    def state_from_observation(
        self, observation: torch.Tensor, *, device: torch.device | str | None = None
    ) -> GameState:
        """The games an observation shows (the mover and game end follow from the board).

        :param observation: ``[B, *obs_shape]`` planes for the player to move.
        """
        obs = torch.as_tensor(observation, device=device)
        if obs.dim() == len(self.obs_shape):
            obs = obs[None]
        if tuple(obs.shape[1:]) != self.obs_shape:
            raise ValueError(
                f"observation: expected shape [B, {', '.join(map(str, self.obs_shape))}] for "
                f"{self.name}, got {tuple(obs.shape)}"
            )
        flat = obs.reshape(obs.shape[0], self.num_cells, 2).to(torch.long)
        mine, theirs = flat[..., 0], flat[..., 1]
        # The first player moves when both have as many marks.
        to_play = (mine.sum(1) != theirs.sum(1)).long()
        board = torch.where(mine > 0, to_play[:, None] + 1, 0)
        board = torch.where(theirs > 0, 2 - to_play[:, None], board).to(torch.int8)
        opponent = 2 - to_play
        over = has_line(board, self.lines.to(board.device), opponent) | (board != 0).all(-1)
        return GameState(board, to_play, over)


def apply_symmetry(
    obs: torch.Tensor,
    policy: torch.Tensor,
    which: torch.Tensor,
    cells: torch.Tensor,
    actions: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each position and its search policy seen through symmetry ``which``.

    :param obs: ``[B, H, W, P]`` board planes; :param policy: ``[B, A]``;
    :param which: ``[B]`` long, a symmetry per row; :param cells: ``[S, H * W]`` and
    :param actions: ``[S, A]``, from :meth:`BoardGame.symmetries`.
    :return: ``(obs [B, H, W, P], policy [B, A])``.
    """
    batch, planes = obs.shape[0], obs.shape[-1]
    flat = obs.reshape(batch, -1, planes)
    index = cells.to(obs.device)[which]  # [B, cells]
    moved = flat.gather(1, index[:, :, None].expand(-1, -1, planes)).view_as(obs)
    return moved, policy.gather(1, actions.to(policy.device)[which])


def _grid_symmetries(rows: int, cols: int, *, dihedral: bool) -> torch.Tensor:
    """``[S, rows * cols]`` cell permutations of a grid: the 8 rotations and reflections
    of a square (``dihedral``), else the identity and the left-right mirror."""
    grid = torch.arange(rows * cols).view(rows, cols)
    if not dihedral:
        return torch.stack([grid.flatten(), grid.flip(1).flatten()])
    found = []
    for turns in range(4):
        rotated = torch.rot90(grid, turns)
        found += [rotated.flatten(), rotated.t().flatten()]
    return torch.stack(found)


class TicTacToe(BoardGame):
    """``tictactoe_v3``: cells ``0..8`` laid out as ``reshape(3, 3)``; action = cell."""

    name = "tictactoe_v3"
    num_actions = 9
    num_cells = 9
    obs_shape = (3, 3, 2)
    agents = ("player_1", "player_2")

    def __init__(self) -> None:
        self._lines = _lines(3, 3, 3)

    @property
    def lines(self) -> torch.Tensor:
        return self._lines

    def open_moves(self, board: torch.Tensor) -> torch.Tensor:
        return board == 0

    def symmetries(self) -> tuple[torch.Tensor, torch.Tensor]:
        cells = _grid_symmetries(3, 3, dihedral=True)
        return cells, cells  # a move is a cell

    def _place(
        self, board: torch.Tensor, action: torch.Tensor, piece: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return board.scatter(1, action[:, None], piece[:, None]), action


class ConnectFour(BoardGame):
    """``connect_four_v3``: 6 rows x 7 columns, row 0 on top; action = column."""

    name = "connect_four_v3"
    num_actions = 7
    num_cells = 42
    obs_shape = (6, 7, 2)
    agents = ("player_0", "player_1")
    rows, cols = 6, 7

    def __init__(self) -> None:
        self._lines = _lines(self.rows, self.cols, 4)

    @property
    def lines(self) -> torch.Tensor:
        return self._lines

    def open_moves(self, board: torch.Tensor) -> torch.Tensor:
        return board[:, : self.cols] == 0

    def symmetries(self) -> tuple[torch.Tensor, torch.Tensor]:
        columns = torch.arange(self.cols)
        return (_grid_symmetries(self.rows, self.cols, dihedral=False),
                torch.stack([columns, columns.flip(0)]))

    def _place(
        self, board: torch.Tensor, action: torch.Tensor, piece: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grid = board.view(-1, self.rows, self.cols)
        column = grid.gather(2, action[:, None, None].expand(-1, self.rows, 1)).squeeze(2)
        # The piece lands on the lowest empty cell: row (empty cells in the column) - 1.
        row = (column == 0).sum(1) - 1
        cell = row.clamp(min=0) * self.cols + action
        return board.scatter(1, cell[:, None], piece[:, None]), cell


#: The tensor rules of each supported PettingZoo game, by module name.
BOARD_GAMES: dict[str, type[BoardGame]] = {
    TicTacToe.name: TicTacToe,
    ConnectFour.name: ConnectFour,
}


def board_game(name: str) -> BoardGame | None:
    """The tensor rules of the PettingZoo game ``name`` (``"tictactoe_v3"``), or ``None``."""
    cls = BOARD_GAMES.get(name)
    return None if cls is None else cls()
