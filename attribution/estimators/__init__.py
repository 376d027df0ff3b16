"""Attribution estimators, all returning the protocol convention of docs/protocol.md section 1.1:
an affine datamodel ``(a0, a_1..a_N)`` per output in +-1 encoding, orientation
(outputs, N), positive ``a_i`` = including point i raises the output."""
