{
  "targets": [
    {
      "target_name": "trellis_native",
      "sources": ["src/native.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
