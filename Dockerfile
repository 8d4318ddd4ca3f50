FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DJANGO_ENV=production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings, not production's secret: a build-only environment, never served.
RUN DJANGO_ENV=build SECRET_KEY=collectstatic-only DEBUG=false python manage.py collectstatic --noinput -v 0
EXPOSE 8000
# Production variables (secret, hosts, proxy headers, HSTS, cache): compose.yaml and docs/security.md.
CMD ["python", "-m", "smatch.web", "--bind", "0.0.0.0:8000", "--access-log"]
