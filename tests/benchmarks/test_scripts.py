from benchmarks.scripts import slow_reader


def test_slow_reader_script_reports_the_drop_and_the_replay(capsys):
    # 2500 x 3000 bytes: more than the kernel buffers of both ends hold.
    assert slow_reader.main(["--messages", "2500", "--max-outbuf", "65536"]) == 0
    out = capsys.readouterr().out
    assert "slow_consumers 1;" in out
    assert '{"type":"bye","reason":"slow_consumer"}' in out
    assert "unread 2500, replayed in order: yes" in out
