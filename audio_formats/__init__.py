"""Audio formats of the OpenAI-compatible route: mono samples, arriving piece by piece, encoded into a
byte stream (mp3, opus, aac, flac, wav, pcm) by FFmpeg's encoders and muxers through PyAV."""
