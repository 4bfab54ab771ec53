"""Settings: sources, priorities, parsing and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_logging import ConfigurationError, configure_logging, load_settings
from runtime_logging.config import parse_duration, parse_size, split_url_credentials


class TestDefaults:
    def test_reference_service_values(self):
        """The defaults are the reference installer's names."""
        settings = load_settings(env={})

        assert settings.service == "vscode_runtime"
        assert settings.release == "vscode-runtime@1.0.0"
        assert settings.log_path == Path("/var/log/vscode_runtime/app.log")
        assert settings.prefix == "vscode_runtime_"
        assert settings.traces_sample_rate == 0.1
        assert settings.profiles_sample_rate == 0.1

    def test_prefix_follows_service(self):
        """The metric prefix is derived from the service name."""
        assert load_settings(env={}, service="my-svc").prefix == "my_svc_"


class TestSources:
    def test_rising_priority(self, tmp_path):
        """Keywords beat the environment, which beats the file, which beats defaults."""
        config = tmp_path / "logging.toml"
        config.write_text('level = "debug"\nservice = "from_file"\nenvironment = "f"\n')
        env = {"RUNTIME_LOGGING_LEVEL": "warning", "RUNTIME_LOGGING_SERVICE": "env"}

        settings = load_settings(config, env=env, level="error")

        assert (settings.level, settings.service, settings.environment) == (
            "error",
            "env",
            "f",
        )

    def test_config_file_from_environment(self, tmp_path):
        """RUNTIME_LOGGING_CONFIG names the file when none is passed."""
        config = tmp_path / "c.toml"
        config.write_text('[runtime_logging]\nrelease = "x@2"\n')

        settings = load_settings(env={"RUNTIME_LOGGING_CONFIG": str(config)})

        assert settings.release == "x@2"

    def test_conventional_sentry_variables(self):
        """SENTRY_DSN, SENTRY_ENVIRONMENT and SENTRY_RELEASE are honoured as is."""
        env = {
            "SENTRY_DSN": "https://k@127.0.0.1:9/1",
            "SENTRY_ENVIRONMENT": "staging",
            "SENTRY_RELEASE": "r@3",
        }

        settings = load_settings(env=env)

        assert (settings.sentry_dsn, settings.environment, settings.release) == (
            "https://k@127.0.0.1:9/1",
            "staging",
            "r@3",
        )

    def test_prefixed_variable_beats_conventional(self):
        """The toolkit's own variable wins over the ecosystem's."""
        env = {"SENTRY_ENVIRONMENT": "a", "RUNTIME_LOGGING_ENVIRONMENT": "b"}

        assert load_settings(env=env).environment == "b"


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [("1MB", 1_000_000), ("64KB", 64_000), ("1MiB", 1_048_576), ("10", 10), (5, 5)],
    )
    def test_sizes(self, text, expected):
        """Sizes accept units: KB/MB/GB are decimal, KiB/MiB/GiB binary."""
        assert parse_size("max_bytes", text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"), [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), (3, 3.0)]
    )
    def test_durations(self, text, expected):
        """Durations accept ms, s, m and h."""
        assert parse_duration("shutdown_timeout", text) == expected

    def test_lists_and_tables_from_strings(self):
        """Lists and tables can be written as comma-separated strings."""
        env = {
            "RUNTIME_LOGGING_LOGGER_LEVELS": "urllib3=warning, asyncio=ERROR",
            "RUNTIME_LOGGING_SENTRY_TAGS": "team=runtime",
        }

        settings = load_settings(env=env)

        assert settings.logger_levels == {"urllib3": "warning", "asyncio": "error"}
        assert settings.sentry_tags == {"team": "runtime"}

    def test_off_disables_the_file(self):
        """`log_dir = "off"` means no file."""
        assert load_settings(env={}, log_dir="off").log_path is None


class TestErrors:
    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("level", "loud", "one of debug"),
            ("max_bytes", "12 parsecs", "a size"),
            ("console", "fancy", "one of pretty, json, off"),
            ("traces_sample_rate", 1.5, "from 0.0 to 1.0"),
            ("shutdown_timeout", "soon", "a duration"),
            ("metrics_address", "8080", "'HOST:PORT'"),
            ("loki_url", "loki:3100", "http://"),
            ("backup_count", -1, "a whole number"),
            ("compress", "maybe", "true or false"),
            ("logger_levels", "urllib3=loud", "one of debug"),
            ("redact_keys", "card_number,123", "hold a letter"),
            ("redact_keys_allow", "--", "hold a letter"),
            ("redact_keys", "пароль", "hold a letter a-z"),
        ],
    )
    def test_bad_value_names_setting_value_and_fix(self, name, value, expected):
        """A bad value fails with the setting's name, the value and what to use."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, **{name: value})

        message = str(caught.value)
        assert f"`{name}" in message
        assert repr(value).strip("'").rpartition("=")[2] in message
        assert expected in message

    def test_unknown_keyword_suggests_the_closest(self):
        """A misspelt setting is refused with a suggestion."""
        with pytest.raises(ConfigurationError, match="Did you mean `log_dir`"):
            load_settings(env={}, log_dri="x")

    def test_unknown_environment_variable(self):
        """A prefixed variable that names no setting is refused."""
        with pytest.raises(ConfigurationError, match="RUNTIME_LOGGING_LEVLE"):
            load_settings(env={"RUNTIME_LOGGING_LEVLE": "info"})

    def test_unreadable_and_invalid_files(self, tmp_path):
        """A config file that can't be read or parsed is named in the error."""
        broken = tmp_path / "broken.toml"
        broken.write_text("level = \n")

        with pytest.raises(ConfigurationError, match="can't be read"):
            load_settings(tmp_path / "missing.toml", env={})
        with pytest.raises(ConfigurationError, match="not valid TOML"):
            load_settings(broken, env={})

    def test_unbounded_loki_label_refused(self):
        """A Loki label with unbounded values fails at configuration time."""
        with pytest.raises(ConfigurationError, match="request_id"):
            load_settings(env={}, loki_labels="service,request_id")


class TestMasking:
    @pytest.mark.parametrize(
        "loki",
        [
            {"loki_username": "u", "loki_password": "hunter2"},
            {"loki_token": "hunter2"},
            {"loki_url": "https://u:hunter2@127.0.0.1:3100"},
            {"loki_url": "https://u:hun/ter@2@127.0.0.1:3100/loki"},
        ],
    )
    def test_secrets_are_masked(self, loki):
        """Printing the settings never shows a secret."""
        settings = load_settings(
            env={}, sentry_dsn="https://publickey@127.0.0.1:9000/1", **loki
        )

        shown = repr(settings.masked())

        for secret in ("publickey", "hunter2", "hun/ter"):
            assert secret not in shown
        assert settings.masked()["sentry_dsn"] == "https://********@127.0.0.1:9000/1"


class TestUrls:
    @pytest.mark.parametrize(
        ("name", "value", "shown"),
        [
            ("loki_url", "http://127.0.0.1:99999", "'http://127.0.0.1:99999'"),
            ("loki_url", "http://127.0.0.1:abc", "'http://127.0.0.1:abc'"),
            ("loki_url", "http://[::1", "'http://[::1'"),
            ("loki_url", "http://127.0.0.1:0", "port is 0"),
            ("loki_url", "http://:3100", "names no host"),
            ("loki_url", "https://u:pw/x@127.0.0.1:99999", "@127.0.0.1:99999'"),
            ("sentry_dsn", "http://public@127.0.0.1:99999/1", "@127.0.0.1:99999/1'"),
            ("sentry_dsn", "http://public@127.0.0.1:abc/1", "@127.0.0.1:abc/1'"),
        ],
    )
    def test_unreadable_host_or_port_refused(self, name, value, shown):
        """A URL whose host or port can't be read names the setting, never a secret."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, **{name: value})

        message = str(caught.value)
        assert f"`{name}` is" in message
        assert shown in message
        assert "pw/x" not in message
        assert "public" not in message

    @pytest.mark.parametrize(
        ("name", "value", "secret"),
        [
            ("loki_url", "http://user:S3CRETpw?x@127.0.0.1:3100", "S3CRETpw"),
            ("loki_url", "http://user:S3CRET#pw@127.0.0.1:3100", "S3CRET"),
            ("sentry_dsn", "https://S3CRETKEY:x?y@127.0.0.1/1", "S3CRETKEY"),
        ],
    )
    def test_unquoted_query_mark_in_user_info_not_shown(self, name, value, secret):
        """A password holding an unquoted '?' or '#' is refused, never shown."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, **{name: value})

        message = str(caught.value)
        assert f"`{name}` is '" in message
        assert "can't be read" in message
        assert "%3F" in message
        assert secret not in message

    def test_at_in_path_is_not_user_info(self):
        """An '@' after the host and port is in the path: it names no host."""
        url = "http://127.0.0.1:3100/tenant@acme/"

        settings = load_settings(env={}, loki_url=url)

        assert split_url_credentials(url) is None
        assert settings.masked()["loki_url"] == url

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://[::1"]
    )
    def test_configure_logging_refuses_before_connecting(self, url):
        """configure_logging() fails with ConfigurationError, not urllib3's error."""
        with pytest.raises(ConfigurationError, match="`loki_url`"):
            configure_logging(
                env={}, console="off", log_dir="off", handle_signals=False, loki_url=url
            )


class TestConfigFileEncoding:
    @pytest.mark.parametrize(
        ("content", "byte"),
        [
            ('release = "caf\u00e9-1.0"\n'.encode("latin-1"), "0xe9"),
            ('level = "debug"\n'.encode("utf-16"), "0xff"),
        ],
        ids=["latin-1", "utf-16"],
    )
    def test_not_utf8_names_file_byte_and_fix(self, tmp_path, content, byte):
        """A file that is not UTF-8 fails naming the file, the byte and the fix."""
        config = tmp_path / "c.toml"
        config.write_bytes(content)

        with pytest.raises(ConfigurationError) as caught:
            load_settings(config, env={})

        message = str(caught.value)
        assert f"`config_file` {str(config)!r}" in message
        assert byte in message
        assert "UTF-8" in message


class TestQueueSize:
    @pytest.mark.parametrize("value", [0, "0", -1, "-1"])
    def test_zero_refused(self, value):
        """A queue of 0 events would drop every Sentry event: refused, naming it."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, queue_size=value)

        message = str(caught.value)
        assert f"`queue_size` is {value!r}" in message
        assert "1 or more" in message

    def test_one_accepted(self):
        """A queue of one event works: one is sent while the next waits."""
        assert load_settings(env={}, queue_size=1).queue_size == 1


def test_a_name_must_start_with_a_letter():
    """The error says what '9svc' lacks: names start with a letter or '_'."""
    with pytest.raises(ConfigurationError, match="starts with a letter or '_'"):
        load_settings(env={}, service="9svc")


_TABLE = '[runtime_logging]\nlevel = "debug"\n'


class TestConfigFileTable:
    @pytest.mark.parametrize(
        ("text", "named"),
        [
            (
                'rotation = "builtin"\n\n' + _TABLE,
                "rotation",
            ),
            ('colour = "x"\n' + _TABLE, "colour"),
            (
                '[sentry_tags]\nteam = "a"\n' + _TABLE,
                "sentry_tags",
            ),
        ],
    )
    def test_keys_beside_the_table_refused(self, tmp_path, text, named):
        """A setting at the top level beside [runtime_logging] is refused."""
        config = tmp_path / "c.toml"
        config.write_text(text)

        with pytest.raises(ConfigurationError) as caught:
            load_settings(config, env={})

        message = str(caught.value)
        assert str(config) in message
        assert f"`{named}`" in message
        assert "[runtime_logging]" in message

    def test_other_programs_tables_beside_it_are_left_alone(self, tmp_path):
        """A shared file's other sections ([database]) are not settings of ours."""
        config = tmp_path / "c.toml"
        config.write_text('[database]\nhost = "x"\n' + _TABLE)

        assert load_settings(config, env={}).level == "debug"

    def test_runtime_logging_not_a_table_refused(self, tmp_path):
        """`runtime_logging = "..."` is no table of settings."""
        config = tmp_path / "c.toml"
        config.write_text('runtime_logging = "debug"\n')

        with pytest.raises(ConfigurationError, match=r"\[runtime_logging\]"):
            load_settings(config, env={})

    def test_array_of_tables_refused_without_its_values(self, tmp_path):
        """`[[runtime_logging]]` is refused, its passwords not shown."""
        config = tmp_path / "c.toml"
        config.write_text(
            '[[runtime_logging]]\nloki_url = "http://127.0.0.1:3100"\n'
            'loki_username = "u"\nloki_password = "s3cr3t"\n'
        )

        with pytest.raises(ConfigurationError) as caught:
            load_settings(config, env={})

        message = str(caught.value)
        assert "an array of tables ([[runtime_logging]])" in message
        assert "s3cr3t" not in message


class TestMetricsPrefix:
    @pytest.mark.parametrize("value", ["my-app", "1app", "my app", "app.x"])
    def test_bad_prefix_named_itself(self, value):
        """A prefix no metric name can start with is refused as `metrics_prefix`."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, metrics_prefix=value)

        message = str(caught.value)
        assert f"`metrics_prefix` is {value!r}" in message
        assert "metrics_rules" not in message

    def test_configure_logging_blames_the_prefix_not_the_rules(self):
        """With metrics on, the error is the prefix's, not rule 1's."""
        with pytest.raises(ConfigurationError, match="`metrics_prefix`"):
            configure_logging(
                env={},
                console="off",
                log_dir="off",
                handle_signals=False,
                metrics=True,
                metrics_address="off",
                metrics_prefix="my-app",
            )

    @pytest.mark.parametrize("value", ["", "my_app", "my_app_", "_x"])
    def test_good_prefix_accepted(self, value):
        """Letters, digits and '_' (not first a digit), or '' for the default."""
        assert load_settings(env={}, metrics_prefix=value).metrics_prefix == value


class TestValuesThatCrashedLoading:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("log_dir", []),
            ("metrics_dir", {}),
            ("max_bytes", "1" * 400),
            ("loki_batch_bytes", "1" * 400 + "GB"),
            ("shutdown_timeout", "1" * 400),
            ("reopen_interval", "1" * 400 + "h"),
        ],
    )
    def test_refused_naming_setting(self, name, value):
        """A list as a path or a number past a float's range is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match=f"`{name}` is"):
            load_settings(env={}, **{name: value})


class TestMetricsErrorWindow:
    @pytest.mark.parametrize("value", [0, "0s", "500ms"])
    def test_under_a_second_refused_when_read(self, value):
        """The window holds whole seconds: under one is refused as the setting."""
        with pytest.raises(ConfigurationError, match="`metrics_error_window` is"):
            load_settings(env={}, metrics_error_window=value)


class TestSecretsInErrors:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("loki_password", 987654),
            ("loki_token", ["s3cr3t"]),
            ("sentry_dsn", 987654),
            ("sentry_dsn", "s3cr3t@127.0.0.1/1"),
            ("sentry_dsn", "s3cr3t"),
            ("loki_url", ["http://u:s3cr3t@127.0.0.1:3100"]),
            ("loki_url", {"url": "http://u:s3cr3t@127.0.0.1:3100"}),
        ],
    )
    def test_refused_secret_is_not_shown(self, name, value):
        """A refused secret setting is named, its value never shown."""
        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, **{name: value})

        message = str(caught.value)
        assert f"`{name}`" in message
        assert "s3cr3t" not in message
        assert "987654" not in message


class TestSettingsRepr:
    def test_repr_masks_secrets(self):
        """repr(settings), as a traceback or a debug line shows it, hides secrets."""
        settings = load_settings(
            env={},
            loki_token="s3cr3t1",
            loki_url="http://127.0.0.1:3100/?t=s3cr3t2",
            sentry_dsn="https://s3cr3t3@127.0.0.1/1",
        )

        shown = repr(settings)

        assert "s3cr3t" not in shown
        assert "loki_token='********'" in shown
        assert shown.startswith("Settings(service='vscode_runtime'")
