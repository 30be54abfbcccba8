-- LuaJIT's FFI on libxent: `luajit xent.lua HEADER LIBRARY`, where HEADER is
-- include/xent.h preprocessed without its #includes (ffi.cdef takes
-- declarations, not macros; the status and reduction codes are enum
-- constants, so they are found by name).
local ffi = require("ffi")
local header, library = arg[1], arg[2]
local f = assert(io.open(header, "r"))
ffi.cdef(f:read("*a"))
f:close()
local xent = ffi.load(library)

local function check(cond, what)
  if not cond then
    io.stderr:write("xent.lua: " .. what .. "\n")
    os.exit(1)
  end
end

-- Two rows of three classes; the labels pick class 2, then class 0.
local logits = ffi.new("float[6]", {1, 2, 3, -1, 0.5, 4})
local labels = ffi.new("int32_t[2]", {2, 0})
local grad = ffi.new("float[6]")
local loss = ffi.new("float[2]")
local options = xent.xent_options_default()
options.reduction = xent.XENT_REDUCTION_NONE
local st = xent.xent_forward_backward(logits, 2, 3, 3, labels, options, loss, nil, nil, grad, 3)
check(st == xent.XENT_STATUS_OK, "status " .. tonumber(st) .. ": " .. ffi.string(xent.xent_last_error()))

-- The float64 reference: lse(row) - z[label].
local function lse(a, b, c)
  local m = math.max(a, b, c)
  return m + math.log(math.exp(a - m) + math.exp(b - m) + math.exp(c - m))
end
local want = { lse(1, 2, 3) - 3, lse(-1, 0.5, 4) + 1 }
for i = 0, 1 do
  check(math.abs(loss[i] - want[i + 1]) < 1e-5, string.format("row %d loss %.7f, want %.7f", i, loss[i], want[i + 1]))
  local s = grad[3 * i] + grad[3 * i + 1] + grad[3 * i + 2]
  check(math.abs(s) < 1e-6, "gradient row " .. i .. " sums to " .. s)
end
check(math.abs(grad[2] - (math.exp(3 - lse(1, 2, 3)) - 1)) < 1e-6, "gradient of the label's logit")
local got = { loss[0], loss[1] }

-- A bad label: a status by name, the message, and the outputs untouched.
labels[1] = 3
loss[0] = 42
st = xent.xent_forward_backward(logits, 2, 3, 3, labels, options, loss, nil, nil, grad, 3)
check(st == xent.XENT_STATUS_LABEL_OUT_OF_RANGE, "a label of 3 in 3 classes gave status " .. tonumber(st))
check(loss[0] == 42, "a refused call wrote its output")
print(string.format("xent.lua: LuaJIT FFI, losses %.6f %.6f; refused: %s", got[1], got[2],
  ffi.string(xent.xent_last_error())))
