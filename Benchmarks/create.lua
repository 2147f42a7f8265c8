-- wrk script for flowgate-bench: POST CREATE of a new device on every request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"name":"bench %d","serial":"SN-B%06d","site":"HQ","ports":24}', counter, counter % 1000000)
  return wrk.format(nil, nil, nil, body)
end
