/* lf_store_lua: the Lua scripts behind lf_store (private to lf_store.c).
 *
 * Every script gets the same seven leading ARGVs (see S_PRELUDE) so limits
 * and the clock come from the caller, never from Redis: P prefix, NOW ms,
 * LEASE ms, HMAX history count, HAGE history age ms, RTTL result TTL s, PTTL
 * preview TTL s. Script-specific arguments start at ARGV[8]. Key names are
 * built inside the scripts from the prefix, which is fine on one Redis (not
 * on a sharded Redis Cluster). Error codes returned are lf_error.h values. */
#ifndef LF_STORE_LUA_H
#define LF_STORE_LUA_H

#define S_PRELUDE                                                                                 \
    "local P=ARGV[1] local NOW=tonumber(ARGV[2]) local LEASE=tonumber(ARGV[3])\n"                 \
    "local HMAX=tonumber(ARGV[4]) local HAGE=tonumber(ARGV[5])\n"                                 \
    "local RTTL=tonumber(ARGV[6]) local PTTL=tonumber(ARGV[7])\n"                                 \
    "local BUCKETS={5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,120000,300000}\n"      \
    "local function observe(name, ms)\n"                                                          \
    "  if ms < 0 then ms = 0 end\n"                                                               \
    "  local k=P..'stats:hist:'..name local b='inf'\n"                                            \
    "  for _,le in ipairs(BUCKETS) do if ms <= le then b=tostring(le) break end end\n"            \
    "  redis.call('HINCRBY',k,b,1)\n"                                                           \
    "  redis.call('HINCRBY',k,'sum_ms',math.floor(ms))\n"                                         \
    "end\n"                                                                                       \
    "local function position(prio, id)\n"                                                         \
    "  local r=redis.call('ZRANK',P..'q:'..prio,id)\n"                                            \
    "  if not r then return -1 end\n"                                                             \
    "  if prio=='normal' or prio=='low' then r=r+redis.call('ZCARD',P..'q:high') end\n"           \
    "  if prio=='low' then r=r+redis.call('ZCARD',P..'q:normal') end\n"                           \
    "  return r\n"                                                                                \
    "end\n"                                                                                       \
    "local function drop_job(id)\n"                                                               \
    "  local jk=P..'job:'..id\n"                                                                  \
    "  local n=tonumber(redis.call('HGET',jk,'n_images') or '0') or 0\n"                          \
    "  for i=0,n-1 do\n"                                                                          \
    "    redis.call('DEL',P..'img:'..id..':'..i)\n"                                               \
    "    local rk=P..'imgref:'..id..':'..i local ref=redis.call('GET',rk)\n"                       \
    "    if ref then redis.call('ZADD',P..'blobs',0,ref) redis.call('DEL',rk) end\n"               \
    "  end\n"                                                                                     \
    "  redis.call('DEL',jk)\n"                                                                    \
    "end\n"                                                                                       \
    "local function trim()\n"                                                                     \
    "  local h=P..'history'\n"                                                                    \
    "  local old=redis.call('ZRANGEBYSCORE',h,'-inf',NOW-HAGE,'LIMIT',0,64)\n"                    \
    "  for _,id in ipairs(old) do drop_job(id) redis.call('ZREM',h,id) end\n"                     \
    "  local extra=redis.call('ZCARD',h)-HMAX\n"                                                  \
    "  if extra > 0 then\n"                                                                       \
    "    if extra > 64 then extra=64 end\n"                                                       \
    "    local ids=redis.call('ZRANGE',h,0,extra-1)\n"                                            \
    "    for _,id in ipairs(ids) do drop_job(id) end\n"                                           \
    "    redis.call('ZREMRANGEBYRANK',h,0,extra-1)\n"                                             \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "local function finish(id, status, code, msg)\n"                                              \
    "  local jk=P..'job:'..id\n"                                                                  \
    "  redis.call('HSET',jk,'status',status,'finished_ms',NOW,'code',code,'message',msg)\n"       \
    "  redis.call('ZREM',P..'leases',id) redis.call('HDEL',P..'running',id)\n"                    \
    "  redis.call('ZREM',P..'deadlines',id) redis.call('DEL',P..'preview:'..id)\n"                \
    "  redis.call('ZADD',P..'history',NOW,id)\n"                                                  \
    "  redis.call('PEXPIRE',jk,HAGE)\n"                                                           \
    "  redis.call('HINCRBY',P..'stats:counters',status,1)\n"                                      \
    "  trim()\n"                                                                                  \
    "end\n"                                                                                       \
    /* Back to the queue (attempts kept) or, out of attempts, to the dead \
     * letters. Returns the new status. */                                                        \
    "local function requeue(id, reason)\n"                                                        \
    "  local jk=P..'job:'..id\n"                                                                  \
    "  local f=redis.call('HMGET',jk,'attempts','max_attempts','priority','seq','cancel')\n"      \
    "  redis.call('ZREM',P..'leases',id) redis.call('HDEL',P..'running',id)\n"                    \
    "  if f[5]=='1' then finish(id,'cancelled',-9,'cancelled by request') return 'cancelled' end\n" \
    "  local a=tonumber(f[1]) or 0 local m=tonumber(f[2]) or 1\n"                                \
    "  if a >= m then\n"                                                                          \
    "    finish(id,'failed',-21,'failed after '..a..' attempt(s), the maximum: '..reason)\n"     \
    "    redis.call('LPUSH',P..'dead',id) redis.call('LTRIM',P..'dead',0,HMAX-1)\n"               \
    "    redis.call('HINCRBY',P..'stats:counters','dead',1)\n"                                    \
    "    return 'failed'\n"                                                                       \
    "  end\n"                                                                                     \
    "  redis.call('HSET',jk,'status','queued','queued_ms',NOW,'step',0,'steps',0,'message',reason)\n" \
    "  redis.call('HDEL',jk,'worker','started_ms')\n"                                             \
    "  redis.call('DEL',P..'preview:'..id)\n"                                                     \
    "  redis.call('ZADD',P..'q:'..f[3],f[4],id)\n"                                                \
    "  redis.call('HINCRBY',P..'stats:counters','requeued',1)\n"                                  \
    "  return 'queued'\n"                                                                         \
    "end\n"                                                                                       \
    "local function held(id, worker, attempt)\n"                                                  \
    "  local f=redis.call('HMGET',P..'job:'..id,'status','worker','attempts')\n"                  \
    "  if f[1]~='running' or f[2]~=worker then return false end\n"                                \
    "  if attempt ~= 0 and tonumber(f[3]) ~= attempt then return false end\n"                     \
    "  return true\n"                                                                             \
    "end\n"                                                                                       \

/* ARGV 8 id, 9 prio, 10 params, 11 model, 12 pixels, 13 idem, 14 idem ttl s,
 * 15 deadline ms (0 none), 16 max attempts, 17 init upload id ("" none),
 * 18 refiner ("" none), 19 vae ("" none), 20 LoRA set ("" none), 21 mask
 * upload id ("" none), 22 enhancement deadline ms (0 = none: queued at
 * once; else the job waits "enhancing", in the sorted set `enhancing`, for
 * S_LUA_ENHANCED or the reaper), 23 batch key ("" = never batched).
 * -> {id, duplicate 0|1, position, seq (0 for a duplicate), status} */
#define S_LUA_SUBMIT                                                                              \
    S_PRELUDE                                                                                     \
    "local idem=ARGV[13]\n"                                                                       \
    "if idem~='' then\n"                                                                          \
    "  local ex=redis.call('GET',P..'idem:'..idem)\n"                                             \
    "  if ex then\n"                                                                              \
    "    local f=redis.call('HMGET',P..'job:'..ex,'status','priority')\n"                         \
    "    if f[1] then\n"                                                                          \
    "      local pos=-1 if f[1]=='queued' then pos=position(f[2],ex) end\n"                       \
    "      return {ex,1,pos,0,f[1]}\n"                                                            \
    "    end\n"                                                                                   \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "local seq=redis.call('INCR',P..'seq')\n"                                                     \
    "local enh=tonumber(ARGV[22] or '0') or 0\n"                                                  \
    "local st='queued' if enh > 0 then st='enhancing' end\n"                                      \
    "redis.call('HSET',jk,'status',st,'priority',ARGV[9],'attempts',0,\n"                   \
    "  'max_attempts',ARGV[16],'model',ARGV[11],'pixels',ARGV[12],'params',ARGV[10],\n"           \
    "  'created_ms',ARGV[2],'queued_ms',ARGV[2],'seq',seq,'idem',idem,\n"                         \
    "  'deadline_ms',ARGV[15],'init',ARGV[17],'step',0,'steps',0,'refiner',ARGV[18] or '',\n"       \
    "  'vae',ARGV[19] or '','loras',ARGV[20] or '','mask',ARGV[21] or '','bkey',ARGV[23] or '')\n"                                            \
    "if idem~='' then redis.call('SET',P..'idem:'..idem,id,'EX',ARGV[14]) end\n"                  \
    "redis.call('HINCRBY',P..'stats:counters','submitted',1)\n"                                   \
    "if enh > 0 then\n"                                                                           \
    "  redis.call('ZADD',P..'enhancing',enh,id)\n"                                                \
    "  return {id,0,-1,seq,st}\n"                                                                 \
    "end\n"                                                                                       \
    "redis.call('ZADD',P..'q:'..ARGV[9],seq,id)\n"                                                \
    "if tonumber(ARGV[15]) > 0 then redis.call('ZADD',P..'deadlines',ARGV[15],id) end\n"          \
    "return {id,0,position(ARGV[9],id),seq,st}\n"

/* An enhancing job's prompt is settled (the gateway's ENHANCED, or the
 * reaper past its deadline): ARGV 8 id, 9 params (the caller rewrote the
 * prompt fields of the stored params). Only from "enhancing": into its
 * queue at its place (seq), its queue deadline moved by the time spent
 * enhancing. -> {0, position, seq} | {-13, status} | {-6, ''} */
#define S_LUA_ENHANCED                                                                            \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "redis.call('ZREM',P..'enhancing',id)\n"                                                      \
    "local f=redis.call('HMGET',jk,'status','priority','seq','deadline_ms','created_ms')\n"       \
    "if not f[1] then return {-6,''} end\n"                                                       \
    "if f[1]~='enhancing' then return {-13,f[1]} end\n"                                           \
    "local dl=tonumber(f[4]) or 0\n"                                                              \
    "if dl > 0 then dl=dl+NOW-(tonumber(f[5]) or NOW) end\n"                                      \
    "redis.call('HSET',jk,'status','queued','params',ARGV[9],'queued_ms',NOW,'deadline_ms',dl)\n" \
    "redis.call('ZADD',P..'q:'..f[2],f[3],id)\n"                                                  \
    "if dl > 0 then redis.call('ZADD',P..'deadlines',dl,id) end\n"                                \
    "return {0,position(f[2],id),tonumber(f[3])}\n"

/* ARGV 8 n per priority -> flat {id, prio index, model, pixels, created, seq, refiner, vae,
 * loras, batch key}* */
#define S_LUA_PEEK                                                                                \
    S_PRELUDE                                                                                     \
    "local n=tonumber(ARGV[8]) local out={}\n"                                                    \
    "for i,pr in ipairs({'high','normal','low'}) do\n"                                            \
    "  local q=P..'q:'..pr\n"                                                                     \
    "  local ids=redis.call('ZRANGE',q,0,n-1,'WITHSCORES')\n"                                     \
    "  for j=1,#ids,2 do\n"                                                                       \
    "    local id=ids[j]\n"                                                                       \
    "    local f=redis.call('HMGET',P..'job:'..id,'model','pixels','created_ms','refiner','vae',\n" \
    "      'loras','bkey')\n"                                                                            \
    "    if f[1] then\n"                                                                          \
    "      out[#out+1]=id out[#out+1]=i-1 out[#out+1]=f[1] out[#out+1]=f[2]\n"                    \
    "      out[#out+1]=f[3] out[#out+1]=ids[j+1] out[#out+1]=f[4] or '' out[#out+1]=f[5] or ''\n"  \
    "      out[#out+1]=f[6] or '' out[#out+1]=f[7] or ''\n"                                                              \
    "    else redis.call('ZREM',q,id) end\n"                                                      \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "return out\n"

/* Like PEEK, but only jobs some idle worker could run: ARGV 8 n per
 * priority, 9 entries scanned at most per priority, 10 max pixels (0 = any),
 * 11.. model names (none = any). -> {complete high, normal, low, then
 * {id, prio index, model, pixels, created, seq, refiner, vae, loras, batch key}*}; complete = 1 when the
 * scan reached the end of that queue. */
#define S_LUA_PEEK_FOR                                                                            \
    S_PRELUDE                                                                                     \
    "local per=tonumber(ARGV[8]) local scan=tonumber(ARGV[9]) local maxpx=tonumber(ARGV[10])\n"   \
    "local ok={} local any=#ARGV<11\n"                                                            \
    "for i=11,#ARGV do ok[ARGV[i]]=true end\n"                                                    \
    "local out={0,0,0}\n"                                                                         \
    "for i,pr in ipairs({'high','normal','low'}) do\n"                                            \
    "  local q=P..'q:'..pr local got=0 local pos=0 local complete=0\n"                            \
    "  while got<per and pos<scan do\n"                                                           \
    "    local ids=redis.call('ZRANGE',q,pos,pos+63,'WITHSCORES')\n"                              \
    "    for j=1,#ids,2 do\n"                                                                     \
    "      if got>=per then break end\n"                                                          \
    "      local id=ids[j]\n"                                                                     \
    "      local f=redis.call('HMGET',P..'job:'..id,'model','pixels','created_ms','refiner','vae',\n" \
    "        'loras','bkey')\n"                                                                          \
    "      if f[1] and (any or ok[f[1]]) and (maxpx==0 or (tonumber(f[2]) or 0)<=maxpx) then\n"  \
    "        out[#out+1]=id out[#out+1]=i-1 out[#out+1]=f[1] out[#out+1]=f[2]\n"                  \
    "        out[#out+1]=f[3] out[#out+1]=ids[j+1] out[#out+1]=f[4] or '' out[#out+1]=f[5] or ''\n" \
    "        out[#out+1]=f[6] or '' out[#out+1]=f[7] or '' got=got+1\n"                                                  \
    "      end\n"                                                                                 \
    "    end\n"                                                                                   \
    "    if #ids<128 and got<per then complete=1 break end\n"                                     \
    "    pos=pos+64\n"                                                                            \
    "  end\n"                                                                                     \
    "  out[i]=complete\n"                                                                         \
    "end\n"                                                                                       \
    "return out\n"

/* ARGV 8 id, 9 worker, 10 broker
 * -> {0, attempt, params, init bytes, queue wait ms, prio, mask bytes} | {code} */
#define S_LUA_CLAIM                                                                               \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "local f=redis.call('HMGET',jk,'status','priority','deadline_ms','params','queued_ms','init',\n" \
    "  'mask')\n"                                                                                \
    "if f[1]~='queued' then return {-12} end\n"                                                   \
    "if redis.call('ZREM',P..'q:'..f[2],id)==0 then return {-12} end\n"                           \
    "redis.call('ZREM',P..'deadlines',id)\n"                                                      \
    "local dl=tonumber(f[3]) or 0\n"                                                              \
    "if dl > 0 and NOW > dl then\n"                                                               \
    "  finish(id,'failed',-8,'timed out: waited in the queue past its deadline')\n"              \
    "  return {-8}\n"                                                                             \
    "end\n"                                                                                       \
    "local init=''\n"                                                                             \
    "if f[6] and f[6]~='' then\n"                                                                 \
    "  init=redis.call('GET',P..'upload:'..f[6])\n"                                               \
    "  if not init then finish(id,'failed',-6,'init image upload '..f[6]..' not found (expired?)') return {-6} end\n" \
    "end\n"                                                                                       \
    "local mask=''\n"                                                                             \
    "if f[7] and f[7]~='' then\n"                                                                 \
    "  mask=redis.call('GET',P..'upload:'..f[7])\n"                                               \
    "  if not mask then finish(id,'failed',-6,'mask upload '..f[7]..' not found (expired?)') return {-6} end\n" \
    "end\n"                                                                                       \
    "local att=redis.call('HINCRBY',jk,'attempts',1)\n"                                           \
    "redis.call('HSET',jk,'status','running','worker',ARGV[9],'broker',ARGV[10],\n"               \
    "  'started_ms',ARGV[2],'step',0,'steps',0)\n"                                                \
    "redis.call('ZADD',P..'leases',NOW+LEASE,id)\n"                                               \
    "redis.call('HSET',P..'running',id,ARGV[9])\n"                                                \
    "local wait=NOW-(tonumber(f[5]) or NOW)\n"                                                    \
    "observe('queue_wait',wait)\n"                                                                \
    "return {0,att,f[4],init,wait,f[2],mask}\n"

/* ARGV 8 id, 9 worker, 10 broker -> {0, attempt, changed 0|1} | {code} */
#define S_LUA_ADOPT                                                                               \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "local f=redis.call('HMGET',jk,'status','worker','broker','attempts')\n"                      \
    "if f[1]~='running' or f[2]~=ARGV[9] then return {-13} end\n"                                 \
    "local changed=0\n"                                                                           \
    "if f[3] and f[3]~=ARGV[10] then\n"                                                           \
    "  if redis.call('EXISTS',P..'broker:'..f[3])==1 then return {-12} end\n"                     \
    "  changed=1\n"                                                                               \
    "end\n"                                                                                       \
    "redis.call('HSET',jk,'broker',ARGV[10])\n"                                                   \
    "redis.call('ZADD',P..'leases',NOW+LEASE,id)\n"                                               \
    "return {0,tonumber(f[4]) or 0,changed}\n"

/* ARGV 8 broker, then (job, worker) pairs -> {lost index (0-based)}* */
#define S_LUA_RENEW                                                                               \
    S_PRELUDE                                                                                     \
    "redis.call('SET',P..'broker:'..ARGV[8],NOW,'PX',math.max(math.floor(LEASE/2),1))\n"           \
    "local lost={}\n"                                                                             \
    "for i=9,#ARGV,2 do\n"                                                                        \
    "  if redis.call('HGET',P..'running',ARGV[i])==ARGV[i+1] then\n"                              \
    "    redis.call('ZADD',P..'leases',NOW+LEASE,ARGV[i])\n"                                      \
    "  else lost[#lost+1]=(i-9)/2 end\n"                                                          \
    "end\n"                                                                                       \
    "return lost\n"

/* ARGV 8 id, 9 worker, 10 step, 11 steps, 12 preview ("" none) -> 0 | code */
#define S_LUA_PROGRESS                                                                            \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8]\n"                                                                          \
    "if not held(id,ARGV[9],0) then return -13 end\n"                                             \
    "redis.call('HSET',P..'job:'..id,'step',ARGV[10],'steps',ARGV[11])\n"                         \
    "redis.call('ZADD',P..'leases',NOW+LEASE,id)\n"                                               \
    "if ARGV[12]~='' then redis.call('SET',P..'preview:'..id,ARGV[12],'EX',PTTL) end\n"           \
    "return 0\n"

/* ARGV 8 id, 9 worker, 10 attempt, 11 n images, 12 seeds csv, 13 info,
 * 14 "1" when the images are in an external store (lf_blobstore), 15.. image
 * bytes, or with an external store the objects' names: imgref:{id}:{i}
 * keeps the name for the result TTL and the deletion schedule `blobs`
 * (sorted set, name scored by when it is due) gets it at the same expiry
 * -> {0, run ms, attempts} | {code} */
#define S_LUA_COMPLETE                                                                            \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id local att=tonumber(ARGV[10])\n"                     \
    "local f=redis.call('HMGET',jk,'started_ms','attempts','steps','status','worker')\n"          \
    "if f[4]~='running' or f[5]~=ARGV[9] or (att~=0 and tonumber(f[2])~=att) then return {-13} end\n" \
    "local n=tonumber(ARGV[11])\n"                                                                \
    "for i=0,n-1 do\n"                                                                            \
    "  if ARGV[14]=='1' then\n"                                                                   \
    "    redis.call('SET',P..'imgref:'..id..':'..i,ARGV[15+i],'EX',RTTL)\n"                        \
    "    redis.call('ZADD',P..'blobs',NOW+RTTL*1000,ARGV[15+i])\n"                                 \
    "  else redis.call('SET',P..'img:'..id..':'..i,ARGV[15+i],'EX',RTTL) end\n"                    \
    "end\n"                                                                                       \
    "redis.call('HSET',jk,'n_images',n,'seeds',ARGV[12],'info',ARGV[13],'step',f[3])\n"           \
    "local run=NOW-(tonumber(f[1]) or NOW)\n"                                                     \
    "observe('run',run)\n"                                                                        \
    "finish(id,'done',0,'')\n"                                                                    \
    "return {0,run,tonumber(f[2]) or 0}\n"

/* ARGV 8 id, 9 worker, 10 attempt, 11 code, 12 message -> {0, status, attempts} | {code} */
#define S_LUA_FAIL                                                                                \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8]\n"                                                                          \
    "if not held(id,ARGV[9],tonumber(ARGV[10])) then return {-13} end\n"                          \
    "local a=redis.call('HGET',P..'job:'..id,'attempts')\n"                                       \
    "local st='failed' if tonumber(ARGV[11])==-9 then st='cancelled' end\n"                       \
    "finish(id,st,ARGV[11],ARGV[12])\n"                                                           \
    "return {0,st,tonumber(a) or 0}\n"

/* ARGV 8 id, 9 worker, 10 refund 0|1, 11 reason, 12 broker ("" any: then
 * only the job's last claimer or adopter may give it back)
 * -> {0, status, attempts, message} | {code} */
#define S_LUA_REQUEUE                                                                             \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "if not held(id,ARGV[9],0) then return {-13} end\n"                                           \
    "if (ARGV[12] or '')~='' and redis.call('HGET',jk,'broker')~=ARGV[12] then return {-13} end\n" \
    "if ARGV[10]=='1' then redis.call('HINCRBY',jk,'attempts',-1) end\n"                          \
    "local st=requeue(id,ARGV[11])\n"                                                             \
    "local f=redis.call('HMGET',jk,'attempts','message')\n"                                       \
    "return {0,st,tonumber(f[1]) or 0,f[2] or ''}\n"

/* ARGV 8 id -> {0, previous status, worker} | {code, status} */
#define S_LUA_CANCEL                                                                              \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "local f=redis.call('HMGET',jk,'status','priority','worker')\n"                               \
    "if not f[1] then return {-6,''} end\n"                                                       \
    "if f[1]=='queued' or f[1]=='enhancing' then\n"                                             \
    "  redis.call('ZREM',P..'q:'..f[2],id) redis.call('ZREM',P..'enhancing',id)\n"                \
    "  finish(id,'cancelled',-9,'cancelled by request')\n"                                        \
    "  return {0,f[1],''}\n"                                                                      \
    "elseif f[1]=='running' then\n"                                                               \
    "  redis.call('HSET',jk,'cancel',1)\n"                                                        \
    "  finish(id,'cancelled',-9,'cancelled by request')\n"                                        \
    "  return {0,'running',f[3] or ''}\n"                                                         \
    "end\n"                                                                                       \
    "return {-13,f[1]}\n"

/* ARGV 8 max per kind -> flat {id, status, code, worker}* */
/* Fail a job that is still queued (the broker's verdict that no live worker
 * can run it): {0} failed, {-6} unknown, {-13, status} no longer queued. */
#define S_LUA_FAIL_QUEUED                                                                         \
    S_PRELUDE                                                                                     \
    "local id=ARGV[8] local jk=P..'job:'..id\n"                                                   \
    "local f=redis.call('HMGET',jk,'status','priority')\n"                                        \
    "if not f[1] then return {-6,''} end\n"                                                       \
    "if f[1]~='queued' then return {-13,f[1]} end\n"                                              \
    "redis.call('ZREM',P..'q:'..f[2],id)\n"                                                       \
    "finish(id,'failed',tonumber(ARGV[9]),ARGV[10])\n"                                            \
    "return {0,'failed'}\n"

#define S_LUA_REAP                                                                                \
    S_PRELUDE                                                                                     \
    "local max=tonumber(ARGV[8]) local out={}\n"                                                  \
    "local ids=redis.call('ZRANGEBYSCORE',P..'leases','-inf',NOW,'LIMIT',0,max)\n"                \
    "for _,id in ipairs(ids) do\n"                                                                \
    "  local f=redis.call('HMGET',P..'job:'..id,'status','worker')\n"                             \
    "  if f[1]~='running' then\n"                                                                 \
    "    redis.call('ZREM',P..'leases',id) redis.call('HDEL',P..'running',id)\n"                  \
    "  else\n"                                                                                    \
    "    local w=f[2] or '?'\n"                                                                   \
    "    local st=requeue(id,'worker '..w..' stopped answering (lease expired)')\n"               \
    "    local code=0 if st=='failed' then code=-21 elseif st=='cancelled' then code=-9 end\n"   \
    "    out[#out+1]=id out[#out+1]=st out[#out+1]=code out[#out+1]=w\n"                          \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "ids=redis.call('ZRANGEBYSCORE',P..'deadlines','-inf',NOW,'LIMIT',0,max)\n"                   \
    "for _,id in ipairs(ids) do\n"                                                                \
    "  redis.call('ZREM',P..'deadlines',id)\n"                                                    \
    "  local f=redis.call('HMGET',P..'job:'..id,'status','priority')\n"                           \
    "  if f[1]=='queued' then\n"                                                                  \
    "    redis.call('ZREM',P..'q:'..f[2],id)\n"                                                   \
    "    finish(id,'failed',-8,'timed out: waited in the queue past its deadline')\n"            \
    "    redis.call('HINCRBY',P..'stats:counters','timedout',1)\n"                                \
    "    out[#out+1]=id out[#out+1]='failed' out[#out+1]=-8 out[#out+1]=''\n"                     \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "return out\n"

/* ARGV 8 broker, 9 ttl ms, then (id, job, seen, jobs_done, caps)* */
#define S_LUA_TOUCH                                                                               \
    S_PRELUDE                                                                                     \
    "local ttl=tonumber(ARGV[9])\n"                                                               \
    "for i=10,#ARGV,5 do\n"                                                                       \
    "  local k=P..'worker:'..ARGV[i]\n"                                                           \
    "  redis.call('HSET',k,'job',ARGV[i+1],'seen_ms',ARGV[i+2],'jobs_done',ARGV[i+3],\n"          \
    "    'caps',ARGV[i+4],'broker',ARGV[8])\n"                                                    \
    "  redis.call('PEXPIRE',k,ttl)\n"                                                             \
    "  redis.call('ZADD',P..'workers',ARGV[i+2],ARGV[i])\n"                                       \
    "end\n"                                                                                       \
    "redis.call('ZREMRANGEBYSCORE',P..'workers','-inf',NOW-ttl)\n"                                \
    "return 0\n"

/* ARGV 8 id -> {position, {field, value}*} | false */
#define S_LUA_JOBGET                                                                              \
    S_PRELUDE                                                                                     \
    "local jk=P..'job:'..ARGV[8]\n"                                                               \
    "local h=redis.call('HGETALL',jk)\n"                                                          \
    "if #h==0 then return false end\n"                                                            \
    "local f=redis.call('HMGET',jk,'status','priority')\n"                                        \
    "local pos=-1 if f[1]=='queued' then pos=position(f[2],ARGV[8]) end\n"                        \
    "return {pos,h}\n"

/* ARGV 8 offset, 9 limit -> {total, id*}: running (oldest first), enhancing, then queued */
#define S_LUA_ACTIVE                                                                              \
    S_PRELUDE                                                                                     \
    "local off=tonumber(ARGV[8]) local lim=tonumber(ARGV[9])\n"                                   \
    "local run=redis.call('HKEYS',P..'running') table.sort(run)\n"                                \
    "for _,id in ipairs(redis.call('ZRANGE',P..'enhancing',0,-1)) do run[#run+1]=id end\n"        \
    "local out={0} local total=0\n"                                                               \
    "for _,id in ipairs(run) do\n"                                                                \
    "  if total>=off and #out-1<lim then out[#out+1]=id end total=total+1\n"                      \
    "end\n"                                                                                       \
    "for _,pr in ipairs({'high','normal','low'}) do\n"                                            \
    "  local q=P..'q:'..pr local c=redis.call('ZCARD',q)\n"                                       \
    "  local s=off-total if s<0 then s=0 end\n"                                                   \
    "  local want=lim-(#out-1)\n"                                                                 \
    "  if want>0 and s<c then\n"                                                                  \
    "    for _,id in ipairs(redis.call('ZRANGE',q,s,s+want-1)) do out[#out+1]=id end\n"          \
    "  end\n"                                                                                     \
    "  total=total+c\n"                                                                           \
    "end\n"                                                                                       \
    "out[1]=total\n"                                                                              \
    "return out\n"

/* -> {q high, q normal, q low, running, live workers, dead, {counters}, enhancing} */
#define S_LUA_STATS                                                                               \
    S_PRELUDE                                                                                     \
    "local w=tonumber(ARGV[8])\n"                                                                 \
    "return {redis.call('ZCARD',P..'q:high'),redis.call('ZCARD',P..'q:normal'),\n"               \
    "  redis.call('ZCARD',P..'q:low'),redis.call('HLEN',P..'running'),\n"                         \
    "  redis.call('ZCOUNT',P..'workers',NOW-w,'+inf'),redis.call('LLEN',P..'dead'),\n"            \
    "  redis.call('HGETALL',P..'stats:counters'),redis.call('ZCARD',P..'enhancing')}\n"

/* ARGV 8 window ms -> {{id, {field, value}*}*} */
#define S_LUA_WORKERS                                                                             \
    S_PRELUDE                                                                                     \
    "local ids=redis.call('ZRANGEBYSCORE',P..'workers',NOW-tonumber(ARGV[8]),'+inf')\n"          \
    "table.sort(ids) local out={}\n"                                                              \
    "for _,id in ipairs(ids) do\n"                                                                \
    "  local h=redis.call('HGETALL',P..'worker:'..id)\n"                                          \
    "  if #h>0 then out[#out+1]={id,h} end\n"                                                     \
    "end\n"                                                                                       \
    "return out\n"

/* Delete every key under the prefix. */
#define S_LUA_FLUSH                                                                               \
    S_PRELUDE                                                                                     \
    "local cur='0' local n=0\n"                                                                   \
    "repeat\n"                                                                                    \
    "  local r=redis.call('SCAN',cur,'MATCH',P..'*','COUNT',1000) cur=r[1]\n"                     \
    "  for _,k in ipairs(r[2]) do redis.call('DEL',k) n=n+1 end\n"                                \
    "until cur=='0'\n"                                                                            \
    "return n\n"

/* The gateway's idempotency fingerprint, kept beside idem:{key} (which the
 * submit script writes) as idemh:{key}. ARGV 8 key, 9 hash, 10 ttl s.
 * -> {conflict 0|1, job id or ''}. A different hash conflicts only once the
 * key names a job; before that (the first submit never reached a broker) the
 * new request's hash replaces it. */
#define S_LUA_IDEM                                                                                \
    S_PRELUDE                                                                                     \
    "local ik=P..'idem:'..ARGV[8] local hk=P..'idemh:'..ARGV[8]\n"                                \
    "local id=redis.call('GET',ik) or ''\n"                                                       \
    "local h=redis.call('GET',hk)\n"                                                              \
    "if h and h~=ARGV[9] and id~='' then return {1,id} end\n"                                     \
    "if h~=ARGV[9] then\n"                                                                        \
    "  local t=tonumber(ARGV[10])*1000\n"                                                         \
    "  if id~='' then local pt=redis.call('PTTL',ik) if pt>0 then t=pt end end\n"                 \
    "  redis.call('SET',hk,ARGV[9],'PX',t)\n"                                                     \
    "end\n"                                                                                       \
    "return {0,id}\n"

/* External image store: pop up to ARGV 8 object names whose time has come
 * (expired results, dropped jobs) from the deletion schedule; the caller
 * deletes them and puts back the ones it could not. -> {name...} */
#define S_LUA_BLOBS_DUE                                                                           \
    S_PRELUDE                                                                                     \
    "local k=P..'blobs'\n"                                                                        \
    "local due=redis.call('ZRANGEBYSCORE',k,'-inf',NOW,'LIMIT',0,tonumber(ARGV[8]))\n"            \
    "if #due > 0 then redis.call('ZREM',k,unpack(due)) end\n"                                     \
    "return due\n"

#endif
