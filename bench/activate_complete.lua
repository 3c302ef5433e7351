-- wrk script: each connection is a worker that activates a batch of 10 and completes each job.
-- Keys from an activation answer go on this thread's queue; the next requests complete them.
local api_key = os.getenv("BENCH_API_KEY")
local job_type = os.getenv("BENCH_JOB_TYPE") or "bench"
local queue = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  worker = "wrk-worker-" .. tostring(id)
  activate_body = '{"type":"' .. job_type .. '","worker":"' .. worker ..
      '","max_jobs":10,"timeout":60000,"request_timeout":0}'
  headers = {["Content-Type"] = "application/json", ["X-API-Key"] = api_key}
end

function request()
  local key = table.remove(queue)
  if key then
    return wrk.format("PUT", "/api/v1/jobs/" .. key .. "/complete", headers, '{"variables":{"done":true}}')
  end
  return wrk.format("POST", "/api/v1/jobs/activate", headers, activate_body)
end

function response(status, headers, body)
  if status == 200 then
    for key in string.gmatch(body, '"key":"(srv1%-job%-[%w]+)"') do
      table.insert(queue, key)
    end
  end
end
