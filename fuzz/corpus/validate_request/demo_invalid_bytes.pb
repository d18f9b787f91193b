
demo*
INPUT0BYTES €*Bx