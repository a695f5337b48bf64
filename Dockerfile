FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --no-cache-dir uv
COPY pyproject.toml uv.lock .python-version ./
RUN uv sync --frozen --no-dev
COPY . .
# The board runs as an unprivileged user: it owns /data (SQLite when used, the beat
# schedule, static files) and nothing else; the code and the venv stay root's, read-only to it.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin board \
    && mkdir -p /data && chown board:board /data
ENV BOARD_VAR_DIR=/data
USER board
EXPOSE 8000
CMD ["gunicorn", "dashboard.asgi", "--worker-class", "asgi", "--bind", "0.0.0.0:8000"]
