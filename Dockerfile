# ITB Clinic: one image for web (gunicorn), worker and beat (celery), and the migrate step.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN groupadd --system itb \
    && useradd --system --gid itb --home-dir /app --no-create-home --shell /usr/sbin/nologin itb

# Requirements first: the dependency layer is rebuilt only when they change.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files go into the image with hashed names; whitenoise serves them from STATIC_ROOT.
# Nothing secret is needed to collect them: a throwaway key for this one step (DEBUG off refuses
# to start without a key of its own; the image keeps none, compose passes the real one).
RUN DJANGO_SECRET_KEY="collectstatic-only-$(date +%s%N)" python manage.py collectstatic --noinput \
    && mkdir -p var \
    && chown -R itb:itb var

USER itb
EXPOSE 8000
CMD ["gunicorn", "itbclinic.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
