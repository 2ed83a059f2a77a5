"""Options every list-driven source shares: an empty list is a configuration error naming it."""

from __future__ import annotations

import pytest

from flows.sources import SourceError, build_collector


@pytest.mark.parametrize(
    ("type_name", "options", "option"),
    [
        ("html", {"urls": []}, "urls"),
        ("rss", {"feeds": []}, "feeds"),
        ("wordpress", {"site": "https://blog.example", "posts": []}, "posts"),
        ("discourse", {"base_url": "https://forum.example", "topics": []}, "topics"),
    ],
)
def test_an_empty_list_option_is_a_config_error_that_names_it(type_name, options, option):
    collector = build_collector("src", type_name, options, context=None)
    with pytest.raises(SourceError) as caught:
        next(iter(collector.collect(None)))
    assert caught.value.fatal_config
    assert f"{option} is empty" in str(caught.value) and "src" in str(caught.value)
