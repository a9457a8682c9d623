"""`enroller completion bash|zsh`: a shell completion script for the command line as built.

Owns: the script's text, from the subcommands and the options each takes (read from the parser,
so a new subcommand or setting completes with no edit here). zsh runs the bash script through
`bashcompinit`, which every zsh ships: one script to keep right instead of two.
"""

from __future__ import annotations

import argparse
import shlex

_BASH = """\
# enroller completion for bash (enroller completion bash)
_enroller() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W {commands} -- "$cur"))
        return
    fi
    case $cmd in
{cases}
        *) opts="" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _enroller enroller
"""

_ZSH_HEAD = """\
# enroller completion for zsh (enroller completion zsh): the bash script through bashcompinit
autoload -U +X bashcompinit && bashcompinit
"""


def command_options(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each subcommand of `parser` with the options its `--help` shows, sorted.

    argparse offers no public listing of a parser's options; `_actions` is read, never changed.
    """
    out: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sorted(
                    opt
                    for act in sub._actions
                    if act.help != argparse.SUPPRESS
                    for opt in act.option_strings
                )
    return out


def completion_script(shell: str, commands: dict[str, list[str]]) -> str:
    """The completion script for `shell` ("bash" or "zsh")."""
    cases = "\n".join(
        f"        {shlex.quote(name)}) opts={shlex.quote(' '.join(opts))} ;;"
        for name, opts in commands.items()
    )
    bash = _BASH.format(commands=shlex.quote(" ".join(commands)), cases=cases)
    if shell == "zsh":
        return _ZSH_HEAD + bash
    return bash
