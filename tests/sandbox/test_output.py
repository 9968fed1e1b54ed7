from matrixhpc.sandbox.output import HeadTail


def test_short_output_is_kept_whole() -> None:
    cap = HeadTail(10)
    cap.feed(b"abc")
    cap.feed(b"def")
    assert (cap.bytes(), cap.total, cap.truncated, cap.text()) == (b"abcdef", 6, False, "abcdef")


def test_long_output_keeps_head_and_tail_with_the_counts() -> None:
    cap = HeadTail(10)
    for chunk in (b"0123", b"4567", b"89ab", b"cdefgh"):
        cap.feed(chunk)
    assert cap.total == 18
    assert cap.truncated
    assert cap.bytes() == b"01234defgh"
    assert cap.text() == "01234\n[... 8 bytes omitted of 18 ...]\ndefgh"


def test_one_large_chunk_is_split_between_head_and_tail() -> None:
    cap = HeadTail(5)
    cap.feed(bytes(range(65, 91)))  # A..Z
    assert cap.bytes() == b"ABCYZ"
