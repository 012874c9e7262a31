{{ stage_ratings(source('live', 'ratings')) }}
