-- Argo CD health of a Cairn Reexecution (cairn.dev/v1alpha1), from its kstatus conditions.
-- Progressing until the operator has observed the current generation; then Stalled=True (an invalid
-- request, or the child run failed) is Degraded, Ready=True (a dry run planned, or the child run
-- succeeded) is Healthy, anything else (waiting, planning, child running) is Progressing with the
-- Reconciling message. A status without those conditions is read from status.phase instead.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- The first of its arguments that is a non-empty string (arguments may be nil).
local function text(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" and v ~= "" then
      return v
    end
  end
  return ""
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the Reexecution"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled.message, stalled.reason, status.message)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message, status.message, status.phase)
  return hs
end
if stalled ~= nil or ready ~= nil or reconciling ~= nil then
  hs.status = "Progressing"
  hs.message = text(reconciling and reconciling.message, status.message, status.phase, "Reexecution in progress")
  return hs
end

-- No kstatus conditions: fall back on the phase (Pending, Planned, Running, Succeeded, Failed, Invalid).
local phase = status.phase or ""
if phase == "Planned" or phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Invalid" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = text(status.message, phase, "Waiting for the operator to report a phase")
return hs
