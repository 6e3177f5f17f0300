"""``ivr-serve``: the webhook server's command line, on click like
``ivr-sim`` and ``ivr-report``.

Its options are :data:`ivr.server.options.SERVE_OPTIONS`, the ones
``twist ivr`` reads, and their values are checked by the same
:meth:`ivr.server.options.Options.postOptions`.  Every error is one line
on standard error (a misspelt option with "did you mean"), exit status 2
for a bad command line and 1 when the server cannot start.
"""

from __future__ import annotations

import contextvars
import os
import sys

import click
from twisted.internet.error import CannotListenError
from twisted.python import usage

from ivr.click_i18n import speak_click_in_operator_language
from ivr.i18n import _, use_language
from ivr.server.options import SERVE_OPTIONS, Options, ServeOption
from ivr.server.workers import shares_a_socket

__all__ = ["main", "serve_command"]

PROG = "ivr-serve"


#: What the examples of ``--help`` run (commands, not translated).
EXAMPLES = """\
    ivr-serve
    ivr-serve --listen tcp:8081:interface=127.0.0.1 --db /var/lib/ivr/ivr.db --workers 4
    ivr-serve --public-url https://ivr.example.com --twilio-auth-token TOKEN"""


def _help() -> str:
    # "\b" keeps click from rewrapping the examples.
    return (_("Answer telephony providers' voice webhooks with the flows in --flows.") + "\n\n"
            + _("The database (--db) is created on first start, with the demo orders unless "
                "--orders is given. Every option is also an option of twist ivr.") + "\n\n\b\n"
            + _("Examples:") + "\n" + EXAMPLES)


def _click_option(option: ServeOption) -> click.Option:
    names = [f"--{option.name}"] + ([f"-{option.short}"] if option.short else [])
    text = _(option.help) + (f" [env: {option.env}]" if option.env else "")
    if option.flag:
        return click.Option(names, is_flag=True, default=False, help=text)
    return click.Option(names, default=option.default, show_default=option.default is not None,
                        metavar=option.metavar, help=text)


def serve_command() -> click.Command:
    """The ``ivr-serve`` command, its options from :data:`SERVE_OPTIONS`
    (help in the current operator language)."""
    params = [_click_option(option) for option in SERVE_OPTIONS]
    command = click.Command(PROG, params=params, callback=_serve, help=_help(),
                            context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
    return click.version_option(package_name="ivr-engine", prog_name=PROG)(command)


@click.pass_context
def _serve(ctx: click.Context, **values) -> None:
    options = checked_options(values, ctx.meta["argv"])
    from twisted.internet import reactor

    from ivr.server import tap  # the service tree only once the options are good

    try:
        tap.serve(options, reactor)
    except CannotListenError as error:
        from ivr.server.listening import cannot_listen

        raise click.ClickException(cannot_listen(error, options["listen"])) from None
    except usage.UsageError as error:  # found only on opening it: --db's PostgreSQL, say
        raise click.ClickException(str(error)) from None


def checked_options(values: dict, argv: list[str]) -> Options:
    """The server's options from click's ``values``, checked as ``twist
    ivr`` checks them; ``argv`` is kept for the worker processes."""
    options = Options()
    for option in SERVE_OPTIONS:
        value = values[option.name.replace("-", "_")]
        options[option.name] = int(value) if option.flag else value
    options["arguments"] = list(argv)
    try:
        options.postOptions()
    except usage.UsageError as error:
        raise click.UsageError(str(error)) from None
    if options["workers"] is None:  # one per core, where the socket can be shared
        options["workers"] = (os.cpu_count() or 1) if shares_a_socket(options["listen"]) else 1
    return options


def _language(argv: list[str]) -> str | None:
    """``--lang``'s value in ``argv``, read before click so that the help is
    in that language."""
    for index, arg in enumerate(argv):
        if arg == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None) -> None:
    """Run ``ivr-serve`` with ``argv`` (default: the command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The language is set for this run only, not for whoever called main().
    contextvars.copy_context().run(_main, argv)


def _main(argv: list[str]) -> None:
    use_language(_language(argv))
    speak_click_in_operator_language()
    command = serve_command()
    try:
        with command.make_context(PROG, list(argv)) as ctx:
            ctx.meta["argv"] = argv
            command.invoke(ctx)
    except click.exceptions.Exit as done:  # --help, --version
        if done.exit_code:
            sys.exit(done.exit_code)
    except click.ClickException as error:
        click.echo(f"{PROG}: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except click.Abort:
        sys.exit(1)
