-- When the request's last mutation of a table ({tables}) was created, by
-- the server's clock (the parts it replaced are older), per host
-- ({host_number}).
SELECT {host_number} AS replica, toUInt64(max(toUInt32(create_time))) AS n FROM {source} WHERE ({tables}) AND position(command, {request}) > 0
